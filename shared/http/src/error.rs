//! The one place where domain errors become HTTP statuses and the API's error body
//! `{"error": {"code", "message", "field"}}`. Infrastructure causes are logged, never returned.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use omnichat::Error;
use omnichat::ports::StoreError;
use omnichat::providers::{ProviderError, WebhookError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_owned(), message: message.into(), field: None }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let internal = |status: StatusCode, code: &str, cause: &dyn std::fmt::Display| {
            tracing::error!(%cause, "request failed");
            ApiError::new(status, code, "the service could not complete the request; try again")
        };
        match error {
            Error::Rule(rule) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: rule.code.to_owned(),
                message: rule.message,
                field: Some(rule.field),
            },
            Error::BadRequest { code, message } => ApiError::bad_request(code, message),
            Error::Unauthorized => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "no or bad API key")
            }
            Error::Forbidden { code, message } => ApiError::new(StatusCode::FORBIDDEN, code, message),
            Error::NotFound { what } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
            }
            Error::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            Error::Webhook(WebhookError::Unauthorized) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unverified", WebhookError::Unauthorized.to_string())
            }
            Error::Webhook(malformed @ WebhookError::Malformed { .. }) => {
                ApiError::bad_request("malformed_webhook", malformed.to_string())
            }
            Error::Provider(ProviderError::InvalidCredentials(message)) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_credentials".into(),
                message,
                field: Some("credentials".into()),
            },
            Error::Provider(ProviderError::Rejected(message)) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_rejected",
                format!("the provider refused: {message}"),
            ),
            Error::Provider(cause) => internal(StatusCode::BAD_GATEWAY, "provider_unavailable", &cause),
            Error::Store(StoreError::Conflict { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "the data changed meanwhile; try again")
            }
            Error::Store(StoreError::Invalid(message)) => ApiError::bad_request("invalid_request", message),
            Error::Store(cause) => internal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &cause),
            Error::Secrets(cause) => internal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &cause),
            Error::Events(cause) => internal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &cause),
            Error::Queue(cause) => internal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &cause),
            Error::Media(cause) => internal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &cause),
            Error::Internal(cause) => internal(StatusCode::INTERNAL_SERVER_ERROR, "internal", &cause),
        }
    }
}

/// Every error answers this body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`not_found`, `invalid_limit`, `auto_close_out_of_range`, ...).
    pub code: String,
    pub message: String,
    /// The field or setting at fault (`auto_close.after`, `auto_replies[0].text`), or null.
    #[schema(required = true)]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code, message: self.message, field: self.field } };
        (self.status, Json(body)).into_response()
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// axum's own refusals (a query or path that does not parse, a body over the limit, a method the route
/// lacks) answer plain text; this gives them the API's error body too, keeping their status and headers.
pub async fn json_refusals(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // axum's rejection texts are one line; anything longer is cut rather than buffered.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ if status.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message =
        if text.is_empty() { status.canonical_reason().unwrap_or("refused").to_owned() } else { text };
    let mut json = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().append(name.clone(), value.clone());
        }
    }
    json
}
