//! Connecting helpers: `POST /v1/channels/accounts` (the accounts credentials reach, to pick one) and
//! `POST /v1/channels/{id}/provider` (WhatsApp's "change provider").

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use omnichat::domain::Provider;
use omnichat::usecases::channels;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::wire::{Account, AccountList, Channel, ChannelKind, WhatsappProvider};
use super::{Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/channels/accounts", post(list_accounts))
        .route("/v1/channels/{id}/provider", post(change_provider))
}

/// The documentation of the routes above (merged into the document by `crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_accounts, change_provider))]
pub(crate) struct Docs;

fn unknown_provider(field: &str) -> ApiError {
    ApiError::from(omnichat::Error::rule("unknown_provider", field, "not a provider this product connects"))
}

/// Credentials to list the accounts they reach (Infobip: `{"api_key", "base_url"}`).
// The provider is a string matched by hand, so that an unknown one is a 422 naming its field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = AccountsQuery)]
#[serde(deny_unknown_fields)]
pub struct AccountsBody {
    #[schema(value_type = ChannelKind)]
    provider: String,
    #[schema(value_type = Option<WhatsappProvider>)]
    whatsapp_provider: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    credentials: Map<String, Value>,
}

#[utoipa::path(
    post,
    path = "/v1/channels/accounts",
    tag = "channels",
    summary = "List the accounts credentials reach, to pick one (admin)",
    description = "Infobip: the account's WhatsApp numbers, one of which is then connected as `sender`. \
        Providers whose credentials name exactly one account answer 422 `nothing_to_pick`. Nothing is saved.",
    request_body = AccountsBody,
    responses(
        (status = 200, description = "The accounts", body = AccountList),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unprocessable, doc::BadGateway, doc::Unavailable
    )
)]
async fn list_accounts(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<AccountList>, ApiError> {
    let body: AccountsBody = json_body(&body)?;
    let provider =
        Provider::from_kind(&body.provider, body.whatsapp_provider.as_deref()).ok_or_else(|| {
            unknown_provider(if body.provider == "whatsapp" { "whatsapp_provider" } else { "provider" })
        })?;
    let accounts = channels::list_provider_accounts(&ctx, &principal, provider, &body.credentials).await?;
    Ok(Json(AccountList { items: accounts.into_iter().map(Account::from).collect() }))
}

/// A WhatsApp channel's new provider and its credentials.
// The provider is matched by hand, as above.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ChangeProvider)]
#[serde(deny_unknown_fields)]
pub struct ChangeProviderBody {
    #[schema(value_type = WhatsappProvider)]
    whatsapp_provider: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    credentials: Map<String, Value>,
}

#[utoipa::path(
    post,
    path = "/v1/channels/{id}/provider",
    tag = "channels",
    summary = "Change a WhatsApp channel's provider (admin)",
    description = "Moves the channel to another of edna, MessageBird and Infobip: the new credentials are \
        checked first (nothing changes when they fail), the new webhook is registered, the old provider's \
        webhook and credentials are removed; id, name and settings are kept.",
    params(("id" = String, Path, description = "The channel", format = "uuid")),
    request_body = ChangeProviderBody,
    responses(
        (status = 200, description = "The channel on its new provider", body = Channel),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn change_provider(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Channel>, ApiError> {
    let body: ChangeProviderBody = json_body(&body)?;
    let provider = Provider::from_kind("whatsapp", Some(&body.whatsapp_provider))
        .ok_or_else(|| unknown_provider("whatsapp_provider"))?;
    let channel =
        channels::change_whatsapp_provider(&ctx, &principal, &id, provider, &body.credentials).await?;
    Ok(Json(channel.into()))
}
