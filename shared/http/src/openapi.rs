//! The OpenAPI 3 document of the REST API and the webhooks, served at `GET /openapi.json`: assembled here
//! from what each module documents next to its `routes()` (a `Docs` struct), with the error responses the
//! paths name.
//!
//! The schemas are derived on the types the handlers answer and read (`api::wire`, the request bodies next
//! to their handlers, `error::ErrorBody`), so they cannot describe another shape. Tests check that every
//! route any router registers is in the document, and that the bounds are the domain's constants.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::RefOr;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{OpenApi, ToSchema};

use crate::error::ErrorBody;

/// The document, built once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| document().to_pretty_json().expect("the OpenAPI document serializes"));

/// The whole document: REST API, webhooks and this route.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Root::openapi();
    doc.merge(crate::api::docs());
    doc.merge(crate::webhooks::Docs::openapi());
    doc.merge(Meta::openapi());
    doc
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "omnichat",
        description = "Multichannel contact center: channels (Telegram, VK, Viber, WhatsApp, e-mail, Avito), \
            the contact center's people and hours, dialogs and replies, and the providers' webhooks.\n\n\
            Errors answer `{\"error\": {\"code\", \"message\", \"field\"}}`; `field` names the setting at \
            fault. Lists answer `{\"items\": [...], \"next\"}`: pass `?page=<next>` for the next page and \
            `?limit=N` (1 to 500, default 50) for its size. Another tenant's ids answer 404."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "operator", description = "The platform operator's tenants (the operator key only)"),
        (name = "tenant", description = "The tenant's services and API keys"),
        (name = "channels", description = "Connected provider accounts and their settings"),
        (name = "people", description = "Employees, groups and chatbots"),
        (name = "hours", description = "Working hours"),
        (name = "dialogs", description = "Dialogs, their messages and replies"),
        (name = "workspace", description = "An employee's own dialogs, queue and status"),
        (name = "webhooks", description = "Called by the providers, not by API clients"),
        (name = "meta", description = "This document")
    )
)]
struct Root;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A tenant's API key (admin or employee role); on /v1/tenants, the platform \
                         operator's key",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(paths(openapi_json))]
struct Meta;

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3 document", body = OpenApiDocument))
)]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

/// An OpenAPI 3 document.
pub struct OpenApiDocument;

impl utoipa::PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new().description(Some("An OpenAPI 3 document")).into()
    }
}

impl ToSchema for OpenApiDocument {}

#[cfg(test)]
mod tests;
