//! The error responses the routes document, one per status, for the `responses(...)` of their paths: each
//! answers the `ErrorBody` the error mapping (`crate::error`) writes.

use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder, ResponsesBuilder};

macro_rules! error_response {
    ($(#[$doc:meta])* $name:ident, $status:literal, $description:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
                let content = ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build();
                ResponsesBuilder::new()
                    .response(
                        $status,
                        ResponseBuilder::new().description($description).content("application/json", content),
                    )
                    .build()
                    .into()
            }
        }
    };
}

error_response!(BadRequest, "400", "Malformed request: not JSON, a wrong type, or a bad query parameter");
error_response!(Unauthorized, "401", "No or bad API key (webhooks: the request is not verifiable)");
error_response!(Forbidden, "403", "The caller's role may not do this (e.g. only the platform operator)");
error_response!(
    NotFound,
    "404",
    "No such resource in the caller's tenant (or not visible to an employee key)"
);
error_response!(Conflict, "409", "The state changed meanwhile, or the resource is still in use");
error_response!(Unprocessable, "422", "A rule is broken; `field` names the setting at fault");
error_response!(BadGateway, "502", "The provider refused the call or could not be reached");
error_response!(Unavailable, "503", "The service's storage is unavailable; try again");
