//! `/v1/dialogs`: the dialogs and their messages.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::wire::{self, Dialog, Message, Page};
use super::{IdPath, PageParams, Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;
use omnichat::domain::{DialogStatus, EmployeeId, Template};
use omnichat::usecases::conversations;
use omnichat::usecases::dialogs::{self, DialogFilter};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/dialogs", get(list_dialogs).post(start_conversation))
        .route("/v1/dialogs/{id}", get(get_dialog))
        .route("/v1/dialogs/{id}/messages", get(list_messages).post(reply))
        .route("/v1/dialogs/{id}/close", post(close_dialog))
}

/// The documentation of the routes above (merged into the document by `crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_dialogs, start_conversation, get_dialog, list_messages, reply, close_dialog))]
pub(crate) struct Docs;

/// `?status` and `?assignee` of the dialog list, read by hand so that a wrong one names its parameter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DialogParams {
    #[param(value_type = Option<wire::DialogStatus>, inline)]
    status: Option<String>,
    /// An employee id.
    #[param(format = "uuid")]
    assignee: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/dialogs",
    tag = "dialogs",
    summary = "List dialogs, by status and assignee",
    params(DialogParams, PageParams),
    responses(
        (status = 200, description = "A page of dialogs", body = Page<Dialog>),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_dialogs(
    State(ctx): State<AppState>,
    Query(params): Query<DialogParams>,
    Query(page): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Page<Dialog>>, ApiError> {
    let status = match params.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some("open") => Some(DialogStatus::Open),
        Some("assigned") => Some(DialogStatus::Assigned),
        Some("closed") => Some(DialogStatus::Closed),
        Some(_) => {
            return Err(ApiError {
                field: Some("status".into()),
                ..ApiError::bad_request("invalid_status", "status is open, assigned or closed")
            });
        }
    };
    let assignee = match params.assignee.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(EmployeeId::parse(raw).ok_or_else(|| ApiError {
            field: Some("assignee".into()),
            ..ApiError::bad_request("invalid_assignee", "assignee is an employee id")
        })?),
    };
    let filter = DialogFilter { status, assignee };
    let (items, next) = dialogs::list_dialogs(&ctx, &principal, &filter, page.limit()?, page.page).await?;
    Ok(Json(Page::of(items, next)))
}

#[utoipa::path(
    get,
    path = "/v1/dialogs/{id}",
    tag = "dialogs",
    summary = "Read a dialog",
    params(IdPath),
    responses(
        (status = 200, description = "The dialog", body = Dialog),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_dialog(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<Dialog>, ApiError> {
    Ok(Json(dialogs::get_dialog(&ctx, &principal, &id).await?.into()))
}

/// The order of a dialog's messages.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first (`?order=desc&limit=1`: the last message).
    Desc,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderParams {
    /// `asc` (oldest first, the default) or `desc` (newest first).
    #[param(inline)]
    order: Option<Order>,
}

#[utoipa::path(
    get,
    path = "/v1/dialogs/{id}/messages",
    tag = "dialogs",
    summary = "List a dialog's messages, oldest first (or newest first with ?order=desc)",
    params(IdPath, PageParams, OrderParams),
    responses(
        (status = 200, description = "A page of messages", body = Page<Message>),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_messages(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    Query(params): Query<PageParams>,
    Query(order): Query<OrderParams>,
    principal: Principal,
) -> Result<Json<Page<Message>>, ApiError> {
    let newest_first = matches!(order.order.unwrap_or_default(), Order::Desc);
    let (items, next) =
        dialogs::list_messages(&ctx, &principal, &id, params.limit()?, params.page, newest_first).await?;
    Ok(Json(Page::of(items, next)))
}

#[utoipa::path(
    post,
    path = "/v1/dialogs/{id}/close",
    tag = "dialogs",
    summary = "Close a dialog",
    params(IdPath),
    responses(
        (status = 200, description = "The closed dialog", body = Dialog),
        doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn close_dialog(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<Dialog>, ApiError> {
    Ok(Json(dialogs::close_dialog(&ctx, &principal, &id).await?.into()))
}

/// An employee's reply, sent through the channel's provider.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewReply)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    /// Not blank; at most the channel's limit: 4,096 characters on Telegram, VK and WhatsApp, 7,000 on
    /// Viber, 1,000 on Avito, 100,000 by e-mail (a longer text is a 422 naming the limit).
    /// May be left out (or empty) when the reply carries attachments.
    #[serde(default)]
    #[schema(max_length = 100_000)]
    text: String,
    /// Quick-reply buttons, 1 to 64 characters each.
    #[serde(default)]
    #[schema(max_items = 10)]
    buttons: Vec<ButtonLabel>,
    /// Uploads to send with the text (`POST /v1/uploads`), at most 10: each must be a kind and size the
    /// channel's provider sends (a 422 names the attachment otherwise).
    #[serde(default)]
    #[schema(max_items = 10)]
    attachments: Vec<String>,
    /// WhatsApp: an approved template instead of text (the only message that goes more than 24 hours
    /// after the customer's last one). It goes alone: no text, buttons or attachments beside it.
    template: Option<TemplateBody>,
}

impl TemplateBody {
    fn into_domain(self) -> Template {
        Template { name: self.name, language: self.language, parameters: self.parameters }
    }
}

/// An approved WhatsApp template and its placeholders' values (`GET /v1/channels/{id}/templates`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    #[schema(min_length = 1, max_length = 512)]
    name: String,
    /// As approved: `en`, `en_US`, `ru`...
    #[schema(min_length = 1, max_length = 15)]
    language: String,
    /// The values of {{1}}, {{2}}..., in order: exactly as many as the template takes.
    #[serde(default)]
    #[schema(max_items = 20)]
    parameters: Vec<String>,
}

/// A button's label: 1 to 64 characters, not blank (the use case checks; serde takes any string).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct ButtonLabel(String);

impl utoipa::PartialSchema for ButtonLabel {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some(r"\S"))
            .into()
    }
}

impl utoipa::ToSchema for ButtonLabel {}

#[utoipa::path(
    post,
    path = "/v1/dialogs/{id}/messages",
    tag = "dialogs",
    summary = "Reply to the customer through the channel's provider",
    params(IdPath),
    request_body = ReplyBody,
    responses(
        (status = 201, description = "The outgoing message", body = Message),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn reply(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let body: ReplyBody = json_body(&body)?;
    let buttons = body.buttons.into_iter().map(|ButtonLabel(label)| label).collect();
    let reply = dialogs::Reply {
        text: body.text,
        buttons,
        attachments: body.attachments,
        template: body.template.map(|t| Template {
            name: t.name,
            language: t.language,
            parameters: t.parameters,
        }),
    };
    let message = dialogs::reply(&ctx, &principal, &id, reply).await?;
    Ok((StatusCode::CREATED, Json(message.into())))
}

/// Someone who never wrote: a WhatsApp number or an e-mail address.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// With its country code: `+7 916 555-12-34`.
    #[schema(max_length = 32)]
    phone: Option<String>,
    #[schema(max_length = 254)]
    address: Option<String>,
}

/// A conversation the business starts: WhatsApp by approved template, e-mail with text.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    #[schema(format = "uuid")]
    channel_id: String,
    to: Recipient,
    #[serde(default)]
    #[schema(max_length = 100_000)]
    text: String,
    template: Option<TemplateBody>,
}

/// The dialog started and its first message.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Conversation {
    dialog: Dialog,
    message: Message,
}

#[utoipa::path(
    post,
    path = "/v1/dialogs",
    tag = "dialogs",
    summary = "Write first to someone who never wrote (WhatsApp by template, e-mail)",
    request_body = NewConversation,
    responses(
        (status = 201, description = "The dialog and its first message", body = Conversation),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn start_conversation(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<Conversation>), ApiError> {
    let body: NewConversation = json_body(&body)?;
    let new = conversations::NewConversation {
        channel_id: body.channel_id,
        phone: body.to.phone,
        address: body.to.address,
        text: body.text,
        template: body.template.map(TemplateBody::into_domain),
    };
    let (dialog, message) = conversations::start(&ctx, &principal, new).await?;
    Ok((StatusCode::CREATED, Json(Conversation { dialog: dialog.into(), message: message.into() })))
}
