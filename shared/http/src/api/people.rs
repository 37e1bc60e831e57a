//! `/v1/employees`, `/v1/groups`, `/v1/chatbots`: the contact center's people. One set of generic handlers
//! serves the three kinds (`Kind`); `kind!` gives each route its own documented handler over them. A `PUT`
//! changes the fields its body names and keeps the others.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use omnichat::domain::RuleViolation;
use omnichat::domain::people::{self as domain, ChatbotChanges, EmployeeChanges, GroupChanges};
use omnichat::error::Result as UseCaseResult;
use omnichat::usecases::{Context, auth, people};
use serde::Serialize;
use serde_json::{Map, Value};

use super::wire::{Chatbot, Distribution, Employee, EmployeeStatus, Group, NewChatbot, Page, SigningSecret};
use super::{IdPath, PageParams, Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/employees", get(employees::list).post(employees::create))
        .route("/v1/employees/{id}", get(employees::read).put(employees::update).delete(employees::delete))
        .route("/v1/groups", get(groups::list).post(groups::create))
        .route("/v1/groups/{id}", get(groups::read).put(groups::update).delete(groups::delete))
        .route("/v1/chatbots", get(chatbots::list).post(chatbots::create))
        .route("/v1/chatbots/{id}", get(chatbots::read).put(chatbots::update).delete(chatbots::delete))
        .route("/v1/chatbots/{id}/rotate-secret", post(rotate_chatbot_secret))
}

/// The documentation of the routes above (merged into the document by `crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    employees::list,
    employees::create,
    employees::read,
    employees::update,
    employees::delete,
    groups::list,
    groups::create,
    groups::read,
    groups::update,
    groups::delete,
    chatbots::list,
    chatbots::create,
    chatbots::read,
    chatbots::update,
    chatbots::delete,
    rotate_chatbot_secret,
))]
pub(crate) struct Docs;

/// One kind of people: how its body is read, its use cases, and what the API shows of it.
trait Kind {
    type Item: Send;
    /// What a create answers: the item, with what is shown only then (a chatbot's signing secret).
    type Created: Send;
    type Changes: Send;
    type Wire: Serialize + From<Self::Item>;
    type CreatedWire: Serialize + From<Self::Created>;

    /// The domain reads the body, so that a broken rule is a 422 naming its field.
    fn changes(body: &Value) -> Result<Self::Changes, RuleViolation>;
    fn list(
        ctx: &Context,
        principal: &auth::Principal,
        limit: usize,
        page: Option<String>,
    ) -> impl Future<Output = UseCaseResult<(Vec<Self::Item>, Option<String>)>> + Send;
    fn create(
        ctx: &Context,
        principal: &auth::Principal,
        changes: Self::Changes,
    ) -> impl Future<Output = UseCaseResult<Self::Created>> + Send;
    fn read(
        ctx: &Context,
        principal: &auth::Principal,
        id: &str,
    ) -> impl Future<Output = UseCaseResult<Self::Item>> + Send;
    fn update(
        ctx: &Context,
        principal: &auth::Principal,
        id: &str,
        changes: Self::Changes,
    ) -> impl Future<Output = UseCaseResult<Self::Item>> + Send;
    fn delete(
        ctx: &Context,
        principal: &auth::Principal,
        id: &str,
    ) -> impl Future<Output = UseCaseResult<()>> + Send;
}

/// The body as a JSON object: anything else is a malformed request (400), like bad JSON.
fn object_body(body: &Bytes) -> Result<Value, ApiError> {
    json_body::<Map<String, Value>>(body).map(Value::Object)
}

async fn list<K: Kind>(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Page<K::Wire>>, ApiError> {
    let (items, next) = K::list(&ctx, &principal, params.limit()?, params.page).await?;
    Ok(Json(Page::of(items, next)))
}

async fn create<K: Kind>(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<K::CreatedWire>), ApiError> {
    let changes = K::changes(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok((StatusCode::CREATED, Json(K::create(&ctx, &principal, changes).await?.into())))
}

async fn read<K: Kind>(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<K::Wire>, ApiError> {
    Ok(Json(K::read(&ctx, &principal, &id).await?.into()))
}

async fn update<K: Kind>(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<K::Wire>, ApiError> {
    let changes = K::changes(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(Json(K::update(&ctx, &principal, &id, changes).await?.into()))
}

async fn delete<K: Kind>(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    K::delete(&ctx, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A kind of people: its `Kind` (the use cases it forwards to), and a module of five documented handlers
/// over the generic ones, named `list`, `create`, `read`, `update`, `delete` (operation ids as they were:
/// `list_employees`, `create_employee`, `get_employee`, ...).
macro_rules! kind {
    (
        $module:ident: $kind:ident, $wire:ident, $input:ident, $changes:ident,
        created ($created:ty => $created_wire:ident),
        uses ($list_uc:ident, $create_uc:ident, $read_uc:ident, $update_uc:ident, $delete_uc:ident),
        paths ($collection:literal, $item:literal), noun $noun:literal,
        summaries ($list:literal, $create:literal, $read:literal, $update:literal, $delete:literal $(,)?) $(,)?
    ) => {
        struct $kind;

        impl Kind for $kind {
            type Item = domain::$wire;
            type Created = $created;
            type Changes = $changes;
            type Wire = $wire;
            type CreatedWire = $created_wire;

            fn changes(body: &Value) -> Result<$changes, RuleViolation> {
                $changes::from_json(body)
            }

            fn list(
                ctx: &Context,
                principal: &auth::Principal,
                limit: usize,
                page: Option<String>,
            ) -> impl Future<Output = UseCaseResult<(Vec<domain::$wire>, Option<String>)>> + Send {
                people::$list_uc(ctx, principal, limit, page)
            }

            fn create(
                ctx: &Context,
                principal: &auth::Principal,
                changes: $changes,
            ) -> impl Future<Output = UseCaseResult<$created>> + Send {
                people::$create_uc(ctx, principal, changes)
            }

            fn read(
                ctx: &Context,
                principal: &auth::Principal,
                id: &str,
            ) -> impl Future<Output = UseCaseResult<domain::$wire>> + Send {
                people::$read_uc(ctx, principal, id)
            }

            fn update(
                ctx: &Context,
                principal: &auth::Principal,
                id: &str,
                changes: $changes,
            ) -> impl Future<Output = UseCaseResult<domain::$wire>> + Send {
                people::$update_uc(ctx, principal, id, changes)
            }

            fn delete(
                ctx: &Context,
                principal: &auth::Principal,
                id: &str,
            ) -> impl Future<Output = UseCaseResult<()>> + Send {
                people::$delete_uc(ctx, principal, id)
            }
        }

        mod $module {
            use super::*;

            #[utoipa::path(
                get,
                path = $collection,
                tag = "people",
                operation_id = concat!("list_", stringify!($module)),
                summary = $list,
                params(PageParams),
                responses(
                    (status = 200, description = concat!("A page of ", stringify!($module)), body = Page<$wire>),
                    doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
                )
            )]
            pub(super) async fn list(
                ctx: State<AppState>,
                params: Query<PageParams>,
                principal: Principal,
            ) -> Result<Json<Page<$wire>>, ApiError> {
                super::list::<$kind>(ctx, params, principal).await
            }

            #[utoipa::path(
                post,
                path = $collection,
                tag = "people",
                operation_id = concat!("create_", $noun),
                summary = $create,
                request_body = $input,
                responses(
                    (status = 201, description = concat!("The new ", $noun), body = $created_wire),
                    doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable,
                    doc::Unavailable
                )
            )]
            pub(super) async fn create(
                ctx: State<AppState>,
                principal: Principal,
                body: Bytes,
            ) -> Result<(StatusCode, Json<$created_wire>), ApiError> {
                super::create::<$kind>(ctx, principal, body).await
            }

            #[utoipa::path(
                get,
                path = $item,
                tag = "people",
                operation_id = concat!("get_", $noun),
                summary = $read,
                params(IdPath),
                responses(
                    (status = 200, description = concat!("The ", $noun), body = $wire),
                    doc::Unauthorized, doc::NotFound, doc::Unavailable
                )
            )]
            pub(super) async fn read(
                ctx: State<AppState>,
                id: Path<IdPath>,
                principal: Principal,
            ) -> Result<Json<$wire>, ApiError> {
                super::read::<$kind>(ctx, id, principal).await
            }

            #[utoipa::path(
                put,
                path = $item,
                tag = "people",
                operation_id = concat!("update_", $noun),
                summary = $update,
                params(IdPath),
                request_body = $input,
                responses(
                    (status = 200, description = concat!("The ", $noun, " as it is now"), body = $wire),
                    doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable,
                    doc::Unavailable
                )
            )]
            pub(super) async fn update(
                ctx: State<AppState>,
                id: Path<IdPath>,
                principal: Principal,
                body: Bytes,
            ) -> Result<Json<$wire>, ApiError> {
                super::update::<$kind>(ctx, id, principal, body).await
            }

            #[utoipa::path(
                delete,
                path = $item,
                tag = "people",
                operation_id = concat!("delete_", $noun),
                summary = $delete,
                params(IdPath),
                responses(
                    (status = 204, description = "Deleted"),
                    doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unavailable
                )
            )]
            pub(super) async fn delete(
                ctx: State<AppState>,
                id: Path<IdPath>,
                principal: Principal,
            ) -> Result<StatusCode, ApiError> {
                super::delete::<$kind>(ctx, id, principal).await
            }
        }
    };
}

kind!(
    employees: Employees, Employee, EmployeeInput, EmployeeChanges,
    created (domain::Employee => Employee),
    uses (list_employees, create_employee, read_employee, update_employee, delete_employee),
    paths ("/v1/employees", "/v1/employees/{id}"), noun "employee",
    summaries (
        "List the tenant's employees",
        "Create an employee (admin)",
        "Read an employee",
        "Change an employee (an employee key: its own status only)",
        "Delete an employee no group or channel names (admin)",
    ),
);

kind!(
    groups: Groups, Group, GroupInput, GroupChanges,
    created (domain::Group => Group),
    uses (list_groups, create_group, read_group, update_group, delete_group),
    paths ("/v1/groups", "/v1/groups/{id}"), noun "group",
    summaries (
        "List the tenant's groups",
        "Create a group (admin)",
        "Read a group",
        "Change a group (admin)",
        "Delete a group no group or channel names (admin)",
    ),
);

kind!(
    chatbots: Chatbots, Chatbot, ChatbotInput, ChatbotChanges,
    created (people::NewChatbot => NewChatbot),
    uses (list_chatbots, create_chatbot, read_chatbot, update_chatbot, delete_chatbot),
    paths ("/v1/chatbots", "/v1/chatbots/{id}"), noun "chatbot",
    summaries (
        "List the tenant's chatbots",
        "Create a chatbot (admin); the answer shows its signing secret, once",
        "Read a chatbot",
        "Change a chatbot (admin)",
        "Delete a chatbot no group or channel names (admin)",
    ),
);

/// A new signing secret for the chatbot's calls, shown once; from now on its calls are signed with it and
/// no longer with the old one.
#[utoipa::path(
    post,
    path = "/v1/chatbots/{id}/rotate-secret",
    tag = "people",
    operation_id = "rotate_chatbot_secret",
    summary = "Rotate a chatbot's signing secret (admin)",
    params(IdPath),
    responses(
        (status = 200, description = "The new signing secret, shown only now", body = SigningSecret),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn rotate_chatbot_secret(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<SigningSecret>, ApiError> {
    let secret = people::rotate_chatbot_secret(&ctx, &principal, &id).await?;
    Ok(Json(SigningSecret { signing_secret: secret.expose().to_owned() }))
}

// ---- the bodies, read by the domain (`*Changes::from_json`) so that a broken rule names its field ----
//
// They are schemas only: serde would answer a wrong type or an unknown field with a 400 naming nothing.
// Their bounds are the domain's constants (the `openapi` tests hold them to it).

/// An employee as sent: `POST` needs `name`; `PUT` changes the fields sent (an employee key may change
/// only its own `status`). `id` is ignored, so what `GET` answers can be sent back.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only, for the reason above
struct EmployeeInput {
    /// Ignored.
    id: Option<String>,
    /// 1 to 100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// Default `offline`.
    status: Option<EmployeeStatus>,
    /// Default 5.
    #[schema(minimum = 1, maximum = 100)]
    max_dialogs: Option<u32>,
}

/// A group as sent: `POST` needs `name`; `PUT` changes the fields sent (`members` replaces the list).
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only, for the reason above
struct GroupInput {
    /// Ignored.
    id: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// Employees of the tenant, each once.
    #[schema(max_items = 200, format = "uuid")]
    members: Option<Vec<String>>,
    /// Default `round_robin`.
    distribution: Option<Distribution>,
    /// Default 60.
    #[schema(minimum = 1, maximum = 86400)]
    wait_seconds: Option<u32>,
}

/// A chatbot as sent: `POST` needs `name` and `webhook_url`; `PUT` changes the fields sent.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only, for the reason above
struct ChatbotInput {
    /// Ignored.
    id: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// https:// (plain http only to localhost, 127.0.0.0/8 and ::1), no credentials in it.
    #[schema(max_length = 2048, format = "uri", pattern = r"^(https://|http://(localhost|127\.|\[::1\]))")]
    webhook_url: Option<String>,
    /// Default true.
    enabled: Option<bool>,
}
