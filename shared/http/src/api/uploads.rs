//! `POST /v1/uploads`: a file for a reply. The answer is a link taking the bytes (an S3 presigned PUT on
//! AWS, the local runner's signed route locally); a reply then names the upload's id in `attachments`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;
use omnichat::usecases::media;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/v1/uploads", post(create_upload))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create_upload))]
pub(crate) struct Docs;

/// A file about to be uploaded.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// The file's name as the customer will see it (sanitized: no path, no control characters).
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
    /// Its media type; the type sent is sniffed from the bytes once uploaded.
    #[schema(example = "image/jpeg", max_length = 129)]
    mime_type: String,
    /// Its size in bytes: the upload takes exactly this many, at most `OMNICHAT_MAX_MEDIA_BYTES`.
    #[schema(minimum = 1)]
    size: u64,
}

/// Where to send an upload's bytes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Upload {
    /// Name it in a reply's `attachments`.
    id: String,
    upload_url: String,
    /// Always `PUT`.
    method: String,
    /// Headers to send with the bytes.
    headers: BTreeMap<String, String>,
    /// Until when `upload_url` takes the bytes.
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
}

#[utoipa::path(
    post,
    path = "/v1/uploads",
    tag = "dialogs",
    summary = "Upload a file for a reply",
    description = "Answers a link taking the file's bytes (`PUT` them with the given headers), valid 15 minutes. \
        A reply names the upload's id in `attachments` within a day; then the size and the type (sniffed from \
        the bytes) are checked against the channel's provider.",
    request_body = NewUpload,
    responses(
        (status = 201, description = "Where to send the bytes", body = Upload),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unprocessable, doc::Unavailable
    )
)]
async fn create_upload(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<Upload>), ApiError> {
    let body: NewUpload = json_body(&body)?;
    let created =
        media::create_upload(&ctx, &principal, body.name.as_deref(), &body.mime_type, body.size).await?;
    Ok((
        StatusCode::CREATED,
        Json(Upload {
            id: created.upload.id,
            upload_url: created.target.url,
            method: created.target.method.to_owned(),
            headers: created.target.headers.into_iter().collect(),
            expires_at: created.upload_expires_at,
        }),
    ))
}
