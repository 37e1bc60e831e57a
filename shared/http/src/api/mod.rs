//! The REST API under `/v1` (docs/API.md): authentication, JSON bodies and pages here; rules in the use
//! cases. One module per resource.

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use omnichat::usecases::auth;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

#[doc(hidden)]
pub mod channels;
#[doc(hidden)]
pub mod connect;
mod customers;
#[doc(hidden)]
pub mod dialogs;
mod hours;
pub mod live;
#[doc(hidden)]
pub mod operator;
mod people;
#[doc(hidden)]
pub mod tenant;
mod uploads;
pub mod wire;
#[doc(hidden)]
pub mod workspace;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 500;

/// Adds every REST route to `router`. Each module adds its own to the one router (rather than building a
/// router of its own to be merged): axum's `merge` inserts every route of the merged router again, and the
/// API Lambda builds this table at every cold start.
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = operator::routes(router);
    let router = tenant::routes(router);
    let router = channels::routes(router);
    let router = connect::routes(router);
    let router = dialogs::routes(router);
    let router = customers::routes(router);
    let router = people::routes(router);
    let router = hours::routes(router);
    let router = workspace::routes(router);
    let router = uploads::routes(router);
    live::routes(router)
}

/// The documentation of every route of `routes()`, each module's next to its router.
pub(crate) fn docs() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut docs = operator::Docs::openapi();
    docs.merge(tenant::Docs::openapi());
    docs.merge(channels::Docs::openapi());
    docs.merge(connect::Docs::openapi());
    docs.merge(dialogs::Docs::openapi());
    docs.merge(customers::Docs::openapi());
    docs.merge(people::Docs::openapi());
    docs.merge(hours::Docs::openapi());
    docs.merge(workspace::Docs::openapi());
    docs.merge(uploads::Docs::openapi());
    docs.merge(live::Docs::openapi());
    docs
}

/// The caller, from `Authorization: Bearer <key>`: an extractor, so that no handler can forget to ask.
/// Handlers take it after their path and query (a malformed query still answers 400 before the key is
/// looked up) and before their body.
#[derive(Debug)]
pub struct Principal(pub auth::Principal);

impl std::ops::Deref for Principal {
    type Target = auth::Principal;

    fn deref(&self) -> &auth::Principal {
        &self.0
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        Ok(Self(auth::authenticate(ctx, bearer(parts)).await?))
    }
}

/// The platform operator, from `Authorization: Bearer <operator key>`; any other key is 401.
#[derive(Debug)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        auth::authenticate_operator(ctx, bearer(parts)).await?;
        Ok(Self)
    }
}

/// A JSON body, or 400 with our error body (not axum's plain-text rejection).
pub fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    use omnichat::limits::{MAX_JSON_DEPTH, json_too_deep};
    if json_too_deep(body, MAX_JSON_DEPTH) {
        return Err(ApiError::bad_request(
            "json_too_deep",
            format!("the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    // JSON is UTF-8: serde_json checks only the strings it keeps, so invalid bytes in an ignored field
    // would otherwise pass (found by fuzzing, fuzz/regressions/api_bodies/).
    let text = std::str::from_utf8(body).map_err(|error| {
        ApiError::bad_request("malformed_json", format!("the body is not valid JSON (not UTF-8): {error}"))
    })?;
    serde_json::from_str(text).map_err(|error| {
        ApiError::bad_request("malformed_json", format!("the body is not valid JSON for this route: {error}"))
    })
}

/// `?limit` and `?page` of every list. `limit` is read by hand, so that a bad one names its parameter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<String>,
    /// The `next` token of the previous page (opaque).
    pub page: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.as_deref() {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
                _ => Err(ApiError {
                    field: Some("limit".into()),
                    ..ApiError::bad_request(
                        "invalid_limit",
                        format!("limit is a number from 1 to {MAX_PAGE_SIZE}"),
                    )
                }),
            },
        }
    }
}

/// `{id}` in a path: a UUID (anything else is 404).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    #[param(format = "uuid")]
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (fuzz/regressions/api_bodies/): invalid UTF-8 in a field the route ignores was
    /// accepted, though such a body is not JSON.
    #[test]
    fn a_body_with_invalid_utf8_in_an_ignored_field_is_malformed() {
        let body =
            Bytes::from_static(b"{\"provider\":\"telegram\",\"credentyals\":{\"\xc1oken\":\"123:abc\"}}");
        let error = json_body::<channels::CreateChannelBody>(&body).expect_err("not JSON");
        assert_eq!((error.status.as_u16(), error.code.as_str()), (400, "malformed_json"));
        let valid =
            Bytes::from_static(b"{\"provider\":\"telegram\",\"credentyals\":{\"token\":\"123:abc\"}}");
        assert!(json_body::<channels::CreateChannelBody>(&valid).is_ok());
    }
}
